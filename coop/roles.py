"""The staff roles and what each may do.

Groups are created and kept in step by data migrations that call `sync_roles` (each app that adds
models adds a migration calling it again), so a fresh database always has them.

- Billing clerk: sees everything; adds and edits members, locations, accounts, meters and the
  records of the daily work; deletes nothing (financial records are never deleted by a clerk);
  cannot touch policy, the fee schedule, billing cycles, office closures or weather holds, and
  cannot waive fees.
- Billing manager: everything a clerk does, plus policy, the fee schedule, cycles, closures,
  weather holds and fee waivers. Financial records in `billing` are never deleted by anyone.
  Only a manager may reconnect an unfunded account (`meters.reconnect_unfunded`, a reason
  required; meters/migrations/0006 grants it through sync_roles).
- Auditor: read-only, everywhere.
- Background tasks (django-q2's schedules, queued, successful and failed tasks) are read-only for
  every role: a schedule names a function the cluster runs as the server's user. Managers may
  pause or resume the cooperative's own schedules (`coop.pause_schedule`, coop/schedules.py);
  only a superuser adds or edits one, and only with a registered task (coop/task_registry.py).
"""

CLERK = "Billing clerk"
MANAGER = "Billing manager"
AUDITOR = "Auditor"

# Apps whose records the roles work with.
ROLE_APPS = ("coop", "accounts", "meters", "billing", "notifications", "django_q")
# Apps a clerk may add to and change (minus the manager-only models below).
CLERK_EDIT_APPS = ("accounts", "meters", "billing", "notifications")
# Models only managers edit (model names, lower case, as in content types).
MANAGER_ONLY_MODELS = {
    ("coop", "policy"),
    ("coop", "feescheduleentry"),
    ("coop", "billingcycle"),
    ("coop", "officeclosure"),
    ("coop", "weatherhold"),
    ("billing", "debtplan"),
    ("billing", "tariff"),
    ("billing", "tariffblock"),
    ("billing", "rider"),
    ("billing", "taxrate"),
    ("accounts", "servicehold"),
    ("notifications", "noticetemplate"),
}
# Apps no role may add to, change or delete from through the admin (only view).
READ_ONLY_APPS = ("django_q",)
# Apps whose rows are financial records: nobody's role may delete them.
FINANCIAL_APPS = ("billing",)
# Audit trails and the ledger, written only by services: every role may read them, none may write
# them through the admin.
AUDIT_MODELS = {
    ("accounts", "accountstatuschange"),
    ("billing", "ledgeraccount"),
    ("billing", "transaction"),
    ("billing", "leg"),
    ("billing", "receivable"),
    ("billing", "credit"),
    ("billing", "allocation"),
    ("billing", "deduction"),
    ("billing", "dailyrun"),
    ("billing", "disconnectdecision"),
    ("billing", "refundpayout"),
    ("meters", "meterread"),
    ("notifications", "message"),
    ("notifications", "webhookevent"),
    ("coop", "schedulechange"),
}


# Custom permissions clerks have too: sending a failed notice again is part of watching the
# failed notices every day.
CLERK_CUSTOM_PERMISSIONS = {"resend_message"}


def _role_allows(role: str, app_label: str, model: str, codename: str) -> bool:
    action = codename.split("_", 1)[0]
    historical = model.startswith("historical")
    if action == "view":
        return True
    if codename in CLERK_CUSTOM_PERMISSIONS:
        return role in (CLERK, MANAGER)
    if action not in ("add", "change", "delete"):
        # Custom permissions (waive fees, post adjustments) are the managers' own.
        return role == MANAGER
    if role == AUDITOR or historical or (app_label, model) in AUDIT_MODELS or app_label in READ_ONLY_APPS:
        return False
    if role == MANAGER:
        return not (action == "delete" and app_label in FINANCIAL_APPS)
    # Clerk
    if action == "delete":
        return False
    return (
        app_label in CLERK_EDIT_APPS
        and (app_label, model) not in MANAGER_ONLY_MODELS
        and action
        in (
            "add",
            "change",
        )
    )


def sync_roles(apps, schema_editor=None):
    """Create the three groups and give each exactly the permissions its role allows."""
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after migrate; make sure the ones we hand out exist now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    perms = list(
        Permission.objects.filter(content_type__app_label__in=ROLE_APPS).select_related("content_type")
    )
    for role in (CLERK, MANAGER, AUDITOR):
        group, _ = Group.objects.get_or_create(name=role)
        allowed = [
            p for p in perms if _role_allows(role, p.content_type.app_label, p.content_type.model, p.codename)
        ]
        group.permissions.set(allowed)
