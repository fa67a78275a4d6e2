pytest_plugins = ["pitchin_testing.plugin"]
