"""``scail-pose batch``: many clips through ``run`` on Ray (see ``runner``)."""
