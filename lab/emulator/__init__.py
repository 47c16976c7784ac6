"""Emulated devices for places where no real daemon exists (and for the loopback demo).

Each device is described by a dict (from YAML): address, persona, firmware and
flaws. Services answer real protocol traffic: an SSH identification line, a
Telnet login prompt, FTP greeting, HTTP admin page, SNMP (v3 discovery, v1/v2c
GET with communities), SIP OPTIONS and NTP.
"""
