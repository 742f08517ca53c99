<?php
/* The service providers this IdP serves: read from their metadata file at every request, so that the front door
   can write it after the IdP started. */
$file = {{ php(sp_metadata) }};
if (is_readable($file) && filesize($file) > 0) {
    foreach (\SimpleSAML\Metadata\SAMLParser::parseDescriptorsFile($file) as $entityId => $entity) {
        $sp = $entity->getMetadata20SP();
        if ($sp !== null) {
            $metadata[$entityId] = array_merge($sp, [
                'attributes.NameFormat' => 'urn:oasis:names:tc:SAML:2.0:attrname-format:uri',
                'sign.logout' => true,
            ]);
        }
    }
}
