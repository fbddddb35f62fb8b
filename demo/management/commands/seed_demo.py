"""Build a believable demo cooperative in an empty database and print the demo logins.

manage.py seed_demo                       # 200 members, every account with a money history
manage.py seed_demo --members 100000 --seed 7
manage.py seed_demo --members 20000 --history-accounts 2000
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

from coop.exceptions import CoopError
from demo import money, seed

# The pages the banner names, by URL name (so it can only print pages that exist: a test resolves
# every URL it prints). Add the member pages here once they are built.
SITE_PAGES = (("Admin site", "admin:index"),)


def _not_negative(text) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise CommandError(f"Expected a whole number, got {text!r}.") from None
    if value < 0:
        raise CommandError(f"Expected a number of at least 0, got {value}.")
    return value


def _positive(text) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise CommandError(f"Expected a whole number, got {text!r}.") from None
    if value < 1:
        raise CommandError(f"Expected a number of at least 1, got {value}.")
    return value


class Command(BaseCommand):
    help = (
        "Build a demo cooperative in an empty database: policy (presets B + C) if none is in force, "
        "office closures and a weather hold, N members with locations, meters and accounts in every "
        "status and both billing modes, a money history (payments, fees, returns, deposits, plans, "
        "bills) for the first accounts in service, and demo logins (printed at the end). Refuses if "
        "the database already has members, locations, meters or accounts. Only with DEBUG on."
    )

    def add_arguments(self, parser):
        parser.add_argument("--members", type=_positive, default=200, help="Members to create (default 200).")
        parser.add_argument(
            "--seed", type=int, default=2026, help="Random seed: the same seed builds the same cooperative."
        )
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="Seed only if the database is empty; otherwise just print the demo logins (./dev start).",
        )
        parser.add_argument(
            "--base-url",
            default="http://127.0.0.1:8000",
            help="Where the web server listens, for the printed links (./dev start sets it).",
        )
        parser.add_argument(
            "--chunk-size",
            type=_positive,
            default=5000,
            help="Members generated and inserted at a time (memory stays flat; default 5000).",
        )
        parser.add_argument(
            "--history-accounts",
            type=_not_negative,
            default=money.DEFAULT_HISTORY_ACCOUNTS,
            help=(
                "Accounts in service (the first, by number) given a money history through the "
                "billing services; the rest have no postings. 0: none "
                f"(default {money.DEFAULT_HISTORY_ACCOUNTS})."
            ),
        )
        parser.add_argument(
            "--daily-days",
            type=_not_negative,
            default=60,
            help=(
                "Days of meter reads and daily prepaid deductions (run through the daily run) "
                "before today; 0: none (default 60)."
            ),
        )

    def handle(self, *args, **options):
        # The demo logins have published passwords (printed below, and in the README): they must
        # never land in a production database. manage.py runs with DEBUG on unless the
        # environment turns it off, as production does.
        if not settings.DEBUG:
            raise CommandError(
                "seed_demo creates logins with published passwords, so it runs only with DEBUG on "
                "(a development or demo machine). Set DJANGO_DEBUG=true for this command if this "
                "database really is a throwaway demo."
            )
        members = options["members"]
        verbose = options["verbosity"] >= 1
        occupied = seed.database_has_demo_data() if options["if_empty"] else None
        if occupied:
            self.stdout.write(f"The database already has {occupied}; not seeding.")
            existing = [
                seed.LoginResult(login=login, created=True)
                for login in (*seed.LOGINS, seed.MEMBER_LOGIN)
                if get_user_model().objects.filter(username=login.username).exists()
            ]
            if existing:
                self.stdout.write(self._logins_block(seed.SeedResult(logins=existing), options["base_url"]))
            return
        if verbose:
            self.stdout.write(
                f"Building a demo cooperative of {members:,} members (seed {options['seed']}) ..."
            )
        try:
            result = seed.seed_demo(
                members=members,
                seed=options["seed"],
                chunk_size=options["chunk_size"],
                history_accounts=options["history_accounts"],
                daily_days=options["daily_days"],
                progress=self.stdout.write if verbose else None,
            )
        except CoopError as exc:
            raise CommandError(str(exc)) from None

        if verbose:
            self.stdout.write(result.policy_note)
            for note in result.calendar_notes:
                self.stdout.write(f"Calendar: {note}, entered by manager.")
        self.stdout.write(self.style.SUCCESS(result.summary()))
        self.stdout.write(self._logins_block(result, options["base_url"]))

    def _logins_block(self, result, base_url: str) -> str:
        rows = [
            (r.login.username, r.login.password if r.created else "(unchanged)", r.login.role, r.note)
            for r in result.logins
        ]
        width_user = max(len("username"), *(len(r[0]) for r in rows))
        width_pass = max(len("password"), *(len(r[1]) for r in rows))
        lines = [
            "",
            "Demo logins (DEMO ONLY: published passwords)",
            *(f"  {label}: {base_url.rstrip('/')}{reverse(name)}" for label, name in SITE_PAGES),
            f"  {'username':<{width_user}}  {'password':<{width_pass}}  role",
        ]
        for username, password, role, note in rows:
            extra = f"  [{note}]" if note else ""
            lines.append(f"  {username:<{width_user}}  {password:<{width_pass}}  {role}{extra}")
        lines.append("  The member login cannot sign in to the admin site (it is a member's, not staff's).")
        return "\n".join(lines)
