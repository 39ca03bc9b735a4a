"""The contract vocabulary: the ids the bot, the backend, dialog files and the HTTP API share.

One module per vocabulary, and each is the only place its ids are written;
everything else imports them. Ids never depend on the language and are part
of the contracts (``docs/backend-api.md``, the CRM JSON): extend them, never
rename them.

| module                  | ids                                                              |
|-------------------------|------------------------------------------------------------------|
| locales                 | shipped locales ``en lv ru zh_Hans zh_Hant``, the fallback ``en`` |
| request_kinds           | ``update_contact marketing_opt_out erasure``                     |
| request_states          | ``submitted awaiting_review queued running done partly_done rejected failed reverted`` |
| categories              | ``contact marketing chat_history identity products transactions`` |
| product_kinds           | ``current_account savings_account card loan``                    |
| marketing_channels      | ``email sms phone post``                                         |
| contact_kinds           | ``phone email address``                                          |
| verification_channels   | ``sms email``                                                    |
"""
