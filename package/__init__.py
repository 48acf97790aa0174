"""The ecs-tls component package: the topologies, hosted for every Pulumi language."""
