"""The ecs-tls component package: the network, the cluster and the topologies, hosted for
every Pulumi language."""
