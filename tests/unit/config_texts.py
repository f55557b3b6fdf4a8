"""Small atp.yaml texts shared by the config tests, with the lines they take up."""

PASSWORD = "s3cr3t-Value-42"
H = "transport:\n  hosts:\n  - id: a\n"  # lines 1-3
V = "transport:\n  spice:\n    vms:\n    - vm_id: v\n"  # lines 1-4
VA = V + "      server_addr: 10.0.0.9\n"  # line 5
