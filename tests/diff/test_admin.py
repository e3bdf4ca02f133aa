"""The diff stage's admin registrations load and list."""

import pytest
from django.contrib import admin

from migrations_audit.diff import admin as diff_admin
from migrations_audit.models.diff import ComparisonTally, ExchangeComparison


@pytest.mark.django_db
def test_bookkeeping_models_are_registered():
    assert diff_admin.ExchangeComparisonAdmin
    assert admin.site.is_registered(ExchangeComparison)
    assert admin.site.is_registered(ComparisonTally)
