"""Start the whole studio: migrate, then the ASGI server, a Celery worker, beat and the endpoint agent, in one
terminal.

When REDIS_URL is unset, settings already started an embedded Redis in this process; the children
get its URL, so Celery, Channels, the gateway and the agent all talk to the one server this command owns.
One Ctrl-C stops all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from studio.core.env import env_int, env_str


class Command(BaseCommand):
    help = ("Run web (uvicorn), Celery worker (queues training, inference, default), beat and the endpoint agent; "
            "embedded Redis if REDIS_URL is unset.")

    def add_arguments(self, parser):
        parser.add_argument("--host", default=env_str("STUDIO_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=env_int("STUDIO_PORT", 8000))
        parser.add_argument("--concurrency", type=int, default=settings.STUDIO_WORKER_CONCURRENCY)
        parser.add_argument("--no-migrate", action="store_true")

    def handle(self, *args, host: str, port: int, concurrency: int, no_migrate: bool, **options):
        if not no_migrate:
            call_command("migrate", interactive=False, verbosity=0)
        env = {**os.environ, "REDIS_URL": settings.REDIS_URL, "DJANGO_SETTINGS_MODULE": "studio.settings"}
        # Each of the `concurrency` training processes gets its share of the cores for BLAS: parallel
        # trials that each spawn a thread per core only slow one another down.
        threads = str(max(1, (os.cpu_count() or 1) // max(1, concurrency)))
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(name, threads)
        python = sys.executable
        commands = {
            # uvicorn (uvloop + httptools) rather than daphne: the invocation gateway in studio.asgi is
            # latency-bound, and daphne's Twisted stack costs several times more per request.
            "web": [python, "-m", "uvicorn", "studio.asgi:application", "--host", host, "--port", str(port),
                    "--no-access-log"],
            "worker": [python, "-m", "celery", "-A", "studio", "worker", "-Q", "training,inference,default",
                       "--concurrency", str(concurrency), "--loglevel", "INFO", "-n", "worker@%h"],
            # Entries live in the database (pipeline schedules are added and changed while beat runs); the
            # DatabaseScheduler also syncs CELERY_BEAT_SCHEDULE's reconcilers into it at start.
            "beat": [python, "-m", "celery", "-A", "studio", "beat", "--loglevel", "INFO",
                     "-S", "django_celery_beat.schedulers:DatabaseScheduler"],
            # Starts, drains and watches endpoint instance processes; autoscales; rolls up invocation metrics.
            "endpoints": [python, str(settings.BASE_DIR / "manage.py"), "runendpoints"],
        }
        children: dict[str, subprocess.Popen] = {}
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        for name, cmd in commands.items():
            # Own process groups: the terminal's Ctrl-C reaches only us, and we stop children in order.
            children[name] = subprocess.Popen(cmd, env=env, start_new_session=True)

        redis_note = "embedded Redis " + settings.REDIS_URL if settings.STUDIO_EMBEDDED_REDIS else settings.REDIS_URL
        url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/"  # noqa: S104  # nosec B104
        self.stdout.write(self.style.SUCCESS(f"\n  Studio is starting at {url}\n"))
        self.stdout.write(
            "  Sign up there; the first account becomes the site admin (Django admin at /admin/).\n"
            f"  Database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]} · Redis: {redis_note}\n"
            "  Press Ctrl-C once to stop everything.\n\n"
        )
        exit_code = 0
        try:
            while not stopping:
                for name, proc in children.items():
                    if proc.poll() is not None:
                        self.stderr.write(f"{name} exited with code {proc.returncode}; stopping the studio.")
                        exit_code = proc.returncode or 1
                        stopping = True
                        break
                time.sleep(0.5)
        finally:
            self.stdout.write("\nStopping web, worker, beat and the endpoint agent…")
            for proc in children.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 20
            for proc in children.values():
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.kill()
            if settings.STUDIO_EMBEDDED_REDIS:
                from studio.core.embedded_redis import embedded_redis_shutdown

                embedded_redis_shutdown()
            self.stdout.write("Stopped.")
        if exit_code:
            sys.exit(exit_code)
