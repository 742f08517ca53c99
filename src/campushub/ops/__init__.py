"""What the command line does for an admin: start and stop the hub (``up``), its ports, state and database,
backups and upgrades, the doctor, the compose deployment and the front door's Apache config."""
