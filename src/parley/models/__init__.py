"""Chat models: the factory that reads settings, and the scripted model tests drive."""
