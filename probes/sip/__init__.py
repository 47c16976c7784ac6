"""SIP: messages, transports, OPTIONS/REGISTER probes, dialogs that never complete a call, secrets."""
