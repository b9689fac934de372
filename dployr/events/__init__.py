"""Events: the in-process bus; later the WebSocket and outbound webhooks subscribe to it."""
