<?php
$metadata[{{ php(entity_id) }}] = [
    'host' => '__DEFAULT__',
    'privatekey' => '{{ dir }}/cert/idp.key',
    'certificate' => '{{ dir }}/cert/idp.crt',
    'auth' => 'users',
    'NameIDFormat' => 'urn:oasis:names:tc:SAML:2.0:nameid-format:transient',
    'attributes.NameFormat' => 'urn:oasis:names:tc:SAML:2.0:attrname-format:uri',
    'authproc' => [90 => ['class' => 'core:AttributeMap', 'name2oid']],
    // its <shibmd:Scope>: a Shibboleth SP drops scoped values (eppn) outside the IdP's scopes
    'scope' => ['campus.test'],
    'sign.logout' => true,
];
