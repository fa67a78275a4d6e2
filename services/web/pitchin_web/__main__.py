from pitchin_web.main import main

main()
