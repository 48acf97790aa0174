"""What runs inside the tasks and on their instances, as pure builders: Envoy bootstraps,
the certbot and copier commands, container definitions, boot and helper scripts, Neo4j
settings. No Pulumi import and nothing from settings/ or components/ (tests/unit/test_layout.py).
"""
