"""The real AWS provider against an emulator: ./scripts/emulate STACK [--switch-to OTHER ...].

Modules, in the order a run uses them:
- `aws_rules`: constraints that AWS's API references document and botocore's models omit
  (also checked by the unit suite over every string the program sends).
- `aws_requests`: parses each API request the provider sends into its operation's input
  shape and checks it against botocore's model and `aws_rules`.
- `server`: moto's server on a loopback port, behind that check.
- `translate`: the program's resources, under the test mocks, as Terraform JSON for the
  `hashicorp/aws` provider, derived from the provider's schema.
- `run`: init, validate, plan, apply, switch, destroy; what is left afterwards.
"""
