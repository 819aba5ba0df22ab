"""Flow's version, in a module of its own: any module can read it without depending on the package's
``__init__``, whose extension hooks import the server and the magics."""
__version__ = "0.1.0"
