from pitchin_notifications.main import main

main()
