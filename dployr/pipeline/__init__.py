"""The deploy pipeline: the state machine from a request to a live release."""
