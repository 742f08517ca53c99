"""What runs in users' servers (and, for the fast start, in the fork server beside the hub): the single-user
server, its kernels, its lab session, and reading a user's file as that user."""
