from pitchin_scheduling.main import main

main()
