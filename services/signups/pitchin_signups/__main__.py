from pitchin_signups.main import main

main()
