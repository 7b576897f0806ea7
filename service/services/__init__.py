"""The services: one per resource, called by the routers; they call the engine, the store and the runners."""
