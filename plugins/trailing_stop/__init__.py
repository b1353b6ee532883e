"""trailing_stop: a consumer plugin that trails a stop on every open position."""
