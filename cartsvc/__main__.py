from cartsvc.cli import main

raise SystemExit(main())
