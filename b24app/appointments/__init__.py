"""Client appointments: learned from Online Booking, a date field or the reminders robot; their
reminders reach the client (open-line chat → workflow → the manager's to-do) and the client's
reply in the chat confirms them. See :mod:`b24app.appointments.store` for the data rules."""
