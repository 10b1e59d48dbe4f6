"""`minimess bench`: a load generator that measures servers over the wire, against a bare baseline."""
