"""The staff web application (``ehcp serve``): GOV.UK Design System pages over the service layer."""
