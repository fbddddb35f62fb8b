"""Admin for django-q2's records (schedules, queued, successful and failed tasks), in place of
django-q2's own admin.

A Schedule names a function that the cluster runs as the server's user, so these pages are
read-only for every role, whatever permissions a group may have been given (coop/roles.py gives
none): no add, no edit, no delete, no "resubmit" (django-q2's action, which re-queues a task's
function and hook as stored). The one change staff make is pausing or resuming one of the
cooperative's own schedules (coop/schedules.py), for users with `coop.pause_schedule` (managers),
each with a reason and recorded in ScheduleChange. A superuser may add or edit a schedule, naming
only a registered task (coop/task_registry.py) and no hook; the cluster refuses any other function
when it queues the task, whoever wrote the row.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import OuterRef, Subquery
from django_q.models import Failure, OrmQ, Schedule, Success, Task

from coop import schedules
from coop.admin_tools import ViewOnlyMixin
from coop.exceptions import CoopError
from coop.models import ScheduleChange
from coop.task_registry import ENQUEUED_BY_CODE, registered_tasks
from coop.validators import no_card_number

for _model in (Schedule, Success, Failure, OrmQ):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)


class ScheduleActionForm(ActionForm):
    reason = forms.CharField(label="Reason (pause / resume)", required=False, max_length=200)


class ScheduleForm(forms.ModelForm):
    """A superuser's schedule: the function is chosen from the registered tasks, never typed."""

    func = forms.ChoiceField(
        label="Function",
        choices=(),
        error_messages={"invalid_choice": "“%(value)s” is not one of the cooperative's registered tasks."},
    )
    change_reason = forms.CharField(
        label="Reason for this change", max_length=200, validators=[no_card_number]
    )

    class Meta:
        model = Schedule
        fields = (
            "name",
            "func",
            "args",
            "kwargs",
            "schedule_type",
            "minutes",
            "repeats",
            "next_run",
            "cron",
            "cluster",
            "intended_date_kwarg",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "func" in self.fields:  # absent on the read-only page
            self.fields["func"].choices = [("", "---------")] + [
                (path, path) for path in sorted(registered_tasks() - ENQUEUED_BY_CODE)
            ]

    def clean(self):
        cleaned = super().clean()
        # The choices already refuse anything else; the service's rule is checked too, so the
        # form and the service can never disagree.
        if "func" in cleaned:
            for field, message in schedules.schedule_errors(func=cleaned["func"], hook=None).items():
                self.add_error(field, message)
        # A hook is not a field here: one left on an old row is dropped by the edit (the cluster
        # refuses to run a task that names one anyway).
        self.instance.hook = None
        return cleaned


@admin.register(Schedule)
class ScheduleAdmin(ViewOnlyMixin, admin.ModelAdmin):
    form = ScheduleForm
    action_form = ScheduleActionForm
    actions = ("pause", "resume")
    list_display = ("id", "name", "func", "schedule_type", "minutes", "repeats", "next_run", "last_success")
    list_display_links = ("id", "name")
    list_filter = ("schedule_type",)
    search_fields = ("name", "func")
    readonly_fields = ("hook",)

    def get_queryset(self, request):
        last = Task.objects.filter(id=OuterRef("task")).values("success")[:1]
        return super().get_queryset(request).annotate(last_success=Subquery(last))

    @admin.display(description="last run succeeded", boolean=True)
    def last_success(self, obj):
        return obj.last_success

    # Only a superuser writes schedules; a group's permissions never let anyone else.
    def has_add_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_pause_permission(self, request):
        return request.user.has_perm("coop.pause_schedule")

    def get_fields(self, request, obj=None):
        if self.has_change_permission(request, obj):
            return [*ScheduleForm.Meta.fields, "change_reason"]
        return [*ScheduleForm.Meta.fields, "hook"]

    def get_readonly_fields(self, request, obj=None):
        if self.has_change_permission(request, obj):
            return ()
        return self.get_fields(request, obj)

    def save_model(self, request, obj, form, change):
        try:
            schedules.schedule_save(
                actor=request.user, schedule=obj, reason=form.cleaned_data["change_reason"]
            )
        except CoopError as exc:  # not a superuser: has_change_permission already said so
            raise PermissionDenied(str(exc)) from exc
        except ValidationError as exc:  # the form checked the same rules; a race is all that is left
            raise PermissionDenied("; ".join(exc.messages)) from exc

    def delete_model(self, request, obj):
        schedules.schedule_delete(actor=request.user, schedule=obj, reason="deleted in the admin")

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)

    def _each(self, request, queryset, service, done: str):
        form = self.action_form(request.POST)
        form.is_valid()
        reason = (form.cleaned_data.get("reason") or "").strip()
        for schedule in queryset.order_by("pk"):
            try:
                service(actor=request.user, schedule_id=schedule.pk, reason=reason)
            except CoopError as exc:
                self.message_user(request, f"{schedule.name or schedule.pk}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{schedule.name}: {done} ({reason}).", messages.SUCCESS)

    @admin.action(description="Pause selected schedules (give a reason)", permissions=["pause"])
    def pause(self, request, queryset):
        self._each(request, queryset, schedules.schedule_pause, "paused")

    @admin.action(description="Resume selected schedules (give a reason)", permissions=["pause"])
    def resume(self, request, queryset):
        self._each(request, queryset, schedules.schedule_resume, "resumed")


class TaskResultAdmin(ViewOnlyMixin, admin.ModelAdmin):
    """Successful or failed tasks: read-only, and no "resubmit" (it would re-queue the stored
    function and hook)."""

    list_display = ("name", "group", "func", "started", "stopped", "short_result")
    list_filter = ("group",)
    search_fields = ("name", "func", "group")
    actions = None
    fields = ("name", "group", "func", "args", "kwargs", "started", "stopped", "attempt_count", "result")
    readonly_fields = fields

    @admin.display(description="result")
    def short_result(self, obj):
        text = str(obj.result)
        return text if len(text) <= 100 else text[:99] + "…"


admin.site.register(Success, TaskResultAdmin)
admin.site.register(Failure, TaskResultAdmin)


@admin.register(OrmQ)
class QueuedTaskAdmin(ViewOnlyMixin, admin.ModelAdmin):
    """Tasks waiting in the database broker: read-only (deleting one would drop work)."""

    list_display = ("id", "key", "name", "group", "func", "lock", "task_id")
    fields = ("key", "lock", "task_id", "name", "group", "func", "args", "kwargs")
    readonly_fields = fields
    actions = None


@admin.register(ScheduleChange)
class ScheduleChangeAdmin(ViewOnlyMixin, admin.ModelAdmin):
    list_display = (
        "at",
        "schedule_name",
        "action",
        "func",
        "repeats_before",
        "repeats_after",
        "reason",
        "actor",
    )
    list_select_related = ("actor",)
    list_filter = ("action",)
    search_fields = ("schedule_name", "func")
    fields = list_display
    readonly_fields = list_display
