"""Media generation: images (synchronous) and video tasks (asynchronous, polled, held)."""
