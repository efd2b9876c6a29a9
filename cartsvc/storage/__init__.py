"""Redis: key names, the Lua script registry, clients and the storage calls."""
