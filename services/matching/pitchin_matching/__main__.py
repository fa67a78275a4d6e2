from pitchin_matching.main import main

main()
