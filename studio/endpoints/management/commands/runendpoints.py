"""``manage.py runendpoints``: the endpoint agent of this host (see studio.endpoints.agent)."""

from __future__ import annotations

import signal

from django.core.management.base import BaseCommand

from studio.endpoints.agent import Agent, AgentConfig


class Command(BaseCommand):
    help = ("Run the endpoint agent: start, drain and watch the instance processes of this host, "
            "autoscale endpoints and roll up their metrics.")

    def add_arguments(self, parser):
        parser.add_argument("--name", help="Agent name, unique among running agents (default: the host name, "
                                           "or STUDIO_ENDPOINT_AGENT_NAME).")
        parser.add_argument("--spares", type=int, help="Warm spare processes kept ready (STUDIO_ENDPOINT_WARM_SPARES).")
        parser.add_argument("--max-instances", type=int,
                            help="Most instances this agent runs (STUDIO_ENDPOINT_AGENT_MAX_INSTANCES).")

    def handle(self, *args, name: str | None, spares: int | None, max_instances: int | None, **options):
        agent = Agent(AgentConfig.from_settings(name=name, spares=spares, max_instances=max_instances))

        def stop(*_):
            agent.stopping.set()
            agent.wake.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        agent.run()
        self.stdout.write(f"endpoint agent {agent.config.name} stopped")
