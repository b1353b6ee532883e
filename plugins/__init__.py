"""feedctl's built-in plugins (``feedctl.plugins.<name>``).

Each is registered through the ``feedctl`` entry-point group exactly as a third
party's plugin is, and reaches the core only through ``feedctl``'s public names.
The core never imports this package.
"""
