from nsynth_core.cli import main

raise SystemExit(main())
