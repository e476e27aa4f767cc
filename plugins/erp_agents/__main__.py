from erp_agents.cli import main

raise SystemExit(main())
