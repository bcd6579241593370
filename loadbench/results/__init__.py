"""The run folder: creating it, writing its files, reading them back; and the gateway's request log, read
back (``request_log``)."""
