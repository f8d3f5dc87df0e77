"""The portal's own pages, the top layer: it may import every app, and no app imports it."""
