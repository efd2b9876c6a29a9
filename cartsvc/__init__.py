"""cartsvc: the cart backend behind the VIZOCHOK shopping assistant's webhooks."""

__version__ = "0.1.0"
