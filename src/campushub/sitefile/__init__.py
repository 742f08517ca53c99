"""The site file: reading it (with the seed's environment variables), its model, its value types and problems,
and the reference tables in ``docs/`` generated from the model. Read by the command line and by the hub."""
