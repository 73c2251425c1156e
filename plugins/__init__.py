"""automed's built-in architecture families, installed as ``automed.plugins``.

Each module is an ordinary plugin: it implements ``register_architectures`` with the same
``@hookimpl`` marker a third-party package uses. The core only knows their module names
(``automed.plugin_manager.DEFAULT_PLUGINS``), never their classes.
"""
