# Preferences, messages and the delivery log arrive with "4. Notifications".
