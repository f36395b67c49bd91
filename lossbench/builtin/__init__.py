"""lossbench's own plugins, registered through the same hooks a third party uses (see ``lossbench.plugin.loader``)."""
