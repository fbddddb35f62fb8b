from django.urls import path

from notifications import views

app_name = "notifications"

urlpatterns = [
    path("status/", views.twilio_status, name="twilio_status"),
    path("inbound/", views.twilio_inbound, name="twilio_inbound"),
]
