"""The edgeaudit lab: emulated devices (lab.emulator) and, later, the namespace rig."""
