from statuswatch.cli import main

raise SystemExit(main())
