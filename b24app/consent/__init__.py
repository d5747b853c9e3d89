"""A client's consent and opt-out: who may be written to, for what (docs/privacy.md).

:mod:`.contact` names the client, :mod:`.policy` is the one gate every send asks
(:func:`~b24app.consent.policy.may_message`), :mod:`.records` writes consents and opt-outs,
:mod:`.optout` handles a client's «СТОП», :mod:`.privacy` exports and erases a client's data.
"""
