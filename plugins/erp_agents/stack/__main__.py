from erp_agents.stack.commands import main

raise SystemExit(main())
