"""Provider plugins for tvoice, found through the ``tvoice.plugins`` entry-point group."""
