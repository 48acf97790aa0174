"""Commands a user runs after `pulumi up` to see the certificate clients get."""

from __future__ import annotations

import pulumi


def verify_commands(
    domain: str, lb_dns: str, has_zone: bool, private_ca: bool, port: int = 443
) -> dict[str, str]:
    """curl and openssl checks of the chain a load balancer presents for `domain`.

    Without a hosted zone, DNS may not point at the load balancer yet, so curl connects to
    it by name (`--connect-to`) while still checking the certificate for `domain`.
    """
    ca = "--cacert ca.pem " if private_ca else ""
    connect_to = "" if has_zone else f"--connect-to {domain}:{port}:{lb_dns}:{port} "
    save_ca = "pulumi stack output caCertificatePem > ca.pem && " if private_ca else ""
    s_client_ca = " -CAfile ca.pem" if private_ca else ""
    host = domain if has_zone else lb_dns
    url = f"https://{domain}/" if port == 443 else f"https://{domain}:{port}/"
    return {
        "verifyCommand": f"{save_ca}curl --fail {ca}{connect_to}{url}",
        "opensslCommand": (
            f"openssl s_client -connect {host}:{port} -servername {domain}{s_client_ca} "
            "-verify_return_error -brief </dev/null"
        ),
    }


def verify_outputs(
    domain: str, lb_dns: pulumi.Output[str], has_zone: bool, private_ca: bool
) -> dict[str, pulumi.Output[str]]:
    commands = lb_dns.apply(lambda dns: verify_commands(domain, dns, has_zone, private_ca))
    return {
        key: commands.apply(lambda c, key=key: c[key])
        for key in ("verifyCommand", "opensslCommand")
    }
