<?php
/* The tests' users (tests/harness/saml_idp.py), with their password and attributes by friendly name; the
   identity provider releases them by OID, as InCommon's do. */
$config = [
    'admin' => ['core:AdminPassword'],
    'users' => [
        'exampleauth:UserPass',
{% for name, attributes in users.items() %}
        {{ php(name ~ ":" ~ password) }} => [
{% for attribute, values in attributes.items() %}
            {{ php(attribute) }} => [{% for value in values %}{{ php(value) }}, {% endfor %}],
{% endfor %}
        ],
{% endfor %}
    ],
];
