from weightsearch.cli import main

raise SystemExit(main())
