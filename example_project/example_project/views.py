"""The home page and sign-up; the shops' pages live in ``restaurants`` and ``shop``."""

from __future__ import annotations

from django.contrib.auth import login
from django.contrib.auth.forms import UserCreationForm
from django.shortcuts import render
from django.urls import reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.generic import FormView
from restaurants.models import Restaurant
from shop.models import Product


def home(request):
    """Both shops at a glance, and where the sandbox and the admin are."""
    return render(
        request,
        "home.html",
        {"restaurants": Restaurant.objects.all()[:3], "products": Product.objects.filter(is_active=True)[:4]},
    )


class SignupView(FormView):
    """A buyer account: user name and password, logged in straight away."""

    template_name = "registration/signup.html"
    form_class = UserCreationForm
    success_url = reverse_lazy("home")

    def form_valid(self, form):
        user = form.save()
        login(self.request, user)
        return super().form_valid(form)

    def get_success_url(self):
        target = self.request.POST.get("next") or self.request.GET.get("next") or ""
        if target and url_has_allowed_host_and_scheme(target, allowed_hosts={self.request.get_host()}):
            return target
        return str(self.success_url)
