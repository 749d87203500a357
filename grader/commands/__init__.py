"""One module per `segrade` command: each adds its parser and runs it by calling the engine."""
