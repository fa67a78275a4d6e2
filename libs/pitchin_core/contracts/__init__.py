"""Event contracts shared by every producer and consumer: models, topics, CloudEvents codec."""
